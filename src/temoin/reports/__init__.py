"""Reports owed by the controller: the annual report to the prefect, the public notice, monthly statistics."""
