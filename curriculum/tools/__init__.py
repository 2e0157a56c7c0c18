"""The learner's tools, not course content: their workspace and progress (`python -m curriculum start|where|progress`),
the learner notebook's guard that lets "Run All" go past unwritten exercises, and where the course lies."""
