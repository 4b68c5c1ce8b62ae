from faceswap.cli import main

main()
