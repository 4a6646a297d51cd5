"""`gan eval`: reference statistics, samplers and the measured table."""
