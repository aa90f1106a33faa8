"""The robot side: the Robot interface, the humanoid cell simulator, skills that run a job."""
