"""`python -m cli`: the scaivault admin CLI."""

from cli.main import main

raise SystemExit(main())
