"""Human-readable outputs: heatmap overlays and result tables."""
