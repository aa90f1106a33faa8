"""The humanoid cell simulator: fastening physics, material handling, cameras, experts."""
