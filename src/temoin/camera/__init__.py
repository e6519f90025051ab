"""The camera agent: the software of a body-worn camera, or of a simulated one."""
