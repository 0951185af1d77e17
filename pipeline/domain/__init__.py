"""The pure domain: leads, verticals, validation, scoring, buyers, auction rules, money, the tree."""
