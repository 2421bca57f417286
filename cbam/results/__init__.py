"""The course's stored experiment results (JSON) and the models lesson 06 opens: package data."""
