"""What a CPU verdict means on the GPU: margins, the graph lint and the GPU-vs-CPU run."""
