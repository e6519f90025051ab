"""Live supervision for the CSU: the CCTV registry, nearby cameras, PTZ aiming, reinforcements."""
