"""Simulated CCTV cameras for the demo and the tests: synthetic street views over RTSP, PTZ over ONVIF."""
