EXTRACT_TARGETS = []  # filled in by the extraction stage
