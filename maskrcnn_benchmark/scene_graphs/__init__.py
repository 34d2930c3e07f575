"""Scene graphs for any images: self-contained model files, an image-folder predictor and its report."""
