"""The torch2mcu command line (stub, replaced below)."""
def main():
    pass
