from sidetrace.cli import main

raise SystemExit(main())
