"""`gan demo`: the zoo in a local web page (Gradio, the optional extra ``demo``).

``work`` is what the page asks of the library, without Gradio: the models on offer and what each can do (read from
config.json and its family, so nothing loads until it is used), the controls (the families' declared use-time
options), untrusted uploads, and the pictures (``draw``). ``page`` lays it out and wires it to Gradio. The page draws with the
functions behind `gan sample`, `gan translate`, `gan upscale`, `gan mix` and `gan classify`, so a seed gives the
same pixels on the page as on the command line. ``server`` starts and stops it.
"""
