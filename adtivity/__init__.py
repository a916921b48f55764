"""Adtivity: what every process shares that is not data (settings, logging, the operator CLI)."""
