"""Never finishes and swallows the interrupt that would stop it: the kernel must be replaced."""
import time

while True:
    try:
        time.sleep(0.1)
    except KeyboardInterrupt:
        pass
