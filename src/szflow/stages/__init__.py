"""Stage drivers: one module per DVC stage (I/O, paths, reports); the libraries below take arguments."""
