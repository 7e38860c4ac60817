"""The portfolio service: lenders, loans, schedules, disbursements, repayments, arrears, FX rates and lender webhooks."""
