"""mediaplane: real-time rooms with server-side media work."""
