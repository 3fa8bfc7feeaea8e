"""The scheduler service: schedules in the store -> export requests of their due periods."""
