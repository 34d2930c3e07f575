"""Detector and heads: GeneralizedRCNN with ResNet/ResNeXt-FPN, RPN and ROI heads."""
