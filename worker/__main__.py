"""`python -m worker`: the Temporal worker (same as `scaivault worker`)."""

from worker.main import main

main()
