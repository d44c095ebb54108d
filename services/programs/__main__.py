from services.programs.app import main

main()
