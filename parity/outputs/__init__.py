"""What a run writes: JUnit XML, the HTML report, and folders written whole."""
