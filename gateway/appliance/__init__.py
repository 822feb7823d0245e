"""Appliance integration: install, doctor, hot-plug discovery, sd_notify."""
