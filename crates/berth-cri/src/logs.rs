//! Container logs in the CRI format: each line of the container's stdout
//! and stderr becomes `<RFC 3339 nano time> <stream> <F|P> <text>\n` in the
//! log file the kubelet asked for; lines longer than
//! `max_container_log_line_size` are split into partial (`P`) lines.
