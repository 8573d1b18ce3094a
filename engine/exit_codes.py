"""Exit codes of every BatchLab command; a cluster's chief process reports with them too."""

OK = 0  # every run completed
FAILED = 1  # a run failed, or nothing could be measured
USAGE = 2  # bad input: settings, data, a record that cannot be trusted
STOPPED = 130  # stopped by the user (Ctrl+C or Stop), the record kept
