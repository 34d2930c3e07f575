"""ROI heads (box head here; the relation head lives in ``relation_head``)."""
