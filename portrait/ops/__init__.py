"""What an operator runs beside the pipeline: the HTML report (report), forgetting a user everywhere (forget), synthetic data for tests and benchmarks (synth)."""
