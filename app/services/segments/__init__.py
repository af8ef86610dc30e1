"""Segments: customer facts queried through a JSON filter language, saved segments, RFM scores,
lifecycle stages and the jobs that recompute them."""
