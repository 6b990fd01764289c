"""Where work runs: ``adabert submit`` (Ray Job Submission) and the cluster set-up files."""
