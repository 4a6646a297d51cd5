"""Numbers about images: the table of measures, their formulas, the judges and Inception."""
