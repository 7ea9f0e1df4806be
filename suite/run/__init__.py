"""Running a scenario: the run folder, the plan, the launchers (in process, child processes, Ray),
and the Bench that measures one variant in this process."""
