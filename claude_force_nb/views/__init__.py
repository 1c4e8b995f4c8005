"""Reports and plots: the only place that builds pandas DataFrames."""
