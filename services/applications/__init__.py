"""The applications service: iCAs, their partner businesses, financing applications, screening, scorecard and committee."""
