"""Death registers: the notice's "big-data comparison" (大数据比对). Extracts from civil
affairs (funeral and cremation), public security (household-registration cancellations) and
hospitals (death certificates) are matched against the enrolled retirees; exact matches
become DeathRecorded, partial ones wait for a person (docs/partners/death-registers.md)."""
