"""In-silico trials: a configuration, virtual patients in chunks, a summary and a report."""
