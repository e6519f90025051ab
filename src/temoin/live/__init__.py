"""Live transmission (CSI L241-2, R241-11): the live button, the CSU's alert and acknowledgement, and the
media plane that carries the agent's video and sound to the people entitled to watch it."""
