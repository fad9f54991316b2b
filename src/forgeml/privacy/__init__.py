"""Privacy: DP-SGD accounting, layers DP-SGD can train, the membership-inference check, and the
anonymisation of user data in prepare (pseudonymous ids, masked personal data in text)."""
