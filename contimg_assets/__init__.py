"""contimg's software-defined assets, checks and the Definitions the code location loads."""
