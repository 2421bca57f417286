"""Driving JupyterLab in a real headless Chromium: a private server, notebook pages, screenshots."""
