"""The simulated death registers (civil affairs, public security, hospitals) and the
bureau's roster export, with their test-kit harness (connector: connectors/death_registers)."""
