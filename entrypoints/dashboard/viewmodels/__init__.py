"""The dashboard's view models: what each page shows and does, as plain Python over the
application's services. Pure: no Panel, Bokeh or HoloViews (an import contract holds it), so
they are unit-tested without a browser and the pages beside them only draw."""
