//! The command line: outputs, errors, exit codes, inputs left unchanged.
