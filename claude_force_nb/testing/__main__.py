"""``python -m claude_force_nb.testing``: run FakeAnthropicServer standalone."""

from . import _main

raise SystemExit(_main())
