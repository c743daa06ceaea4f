# Runs first on the board, before main.py. The host needs nothing here.
