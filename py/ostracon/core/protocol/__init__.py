"""Wire protocols, sans-IO: the sync session (`session`), encrypted frames (`frames`) and the relay's
wire messages (`relay`). Both the sync client and the relay server take their formats from here;
neither imports the other."""
