import sys

if "--fuzz" in sys.argv[1:]:
    from .fuzz import main as fuzz_main

    sys.exit(fuzz_main())
elif "--matrix-parallel" in sys.argv[1:]:
    from .matrix_parallel import main as matrix_parallel_main

    sys.exit(matrix_parallel_main())
else:
    from .bench import main

    main()
