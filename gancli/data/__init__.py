"""Reading inputs: image folders, zips, IDX files, named datasets; writing pictures."""
