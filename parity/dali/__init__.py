"""The DALI side: pipelines loaded, rewritten for the CPU and run with every stage exposed."""
