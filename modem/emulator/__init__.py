"""Emulated GSM network and modems on PTYs, so everything runs without hardware."""
