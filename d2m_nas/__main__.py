from d2m_nas.cli import main

raise SystemExit(main())
