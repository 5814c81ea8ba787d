FEATUREVIS_TARGETS = []  # filled in by the feature-visualization stage
